//! Rule 4: later fragments ride on what their first fragment left.

use netseg_contract::{reason, rule};

use super::{Direction, FirstFragment, Kind, Model, Packet, Verdict};

impl Model {
    /// Rule 4.
    pub(super) fn later_fragment(&mut self, direction: Direction, packet: &Packet) -> Verdict {
        let datagram = self.rules.datagram(direction, packet);
        let Some(first) = self.datagrams.get(&datagram).copied() else {
            return Verdict::deny(reason::FRAGMENT_UNKNOWN);
        };
        if !self.rules.fragments_judged_by_revision || first.revision == self.revision {
            return Verdict::allow(reason::FRAGMENT, first.rule);
        }
        // The connection is asked again, whether or not it is still tracked.
        let decision = first
            .connection
            .map_or(Err(rule::NONE), |connection| self.decision(connection));
        let rule = match decision {
            Ok(rule) => rule,
            Err(denying) => {
                self.datagrams.remove(&datagram);
                return Verdict::cut(reason::REVOKED, denying);
            }
        };
        let revision = self.revision;
        let first = self.datagrams.get_mut(&datagram).expect("remembered");
        first.revision = revision;
        first.rule = rule;
        Verdict::allow(reason::FRAGMENT, rule)
    }

    /// Leaves what later fragments of an admitted first fragment need; the
    /// verdict on the first fragment, unless there is no room for that.
    pub(super) fn remember_first_fragment(
        &mut self,
        direction: Direction,
        packet: &Packet,
        verdict: Verdict,
    ) -> Verdict {
        let connection = match packet.kind {
            Kind::Flow | Kind::EchoReply => self.tracked(direction, packet.tuple),
            _ => None,
        };
        if connection.is_none() && self.rules.fragments_judged_by_revision {
            return verdict;
        }
        let datagram = self.rules.datagram(direction, packet);
        if self.rules.endpoint_shares
            && let Some(origin) = connection.map(|connection| connection.origin)
        {
            if let Some(existing) = self.datagrams.get(&datagram) {
                // Never taken over: the share it counts against stays its own.
                let same_origin = existing.connection.map(|c| c.origin) == Some(origin);
                return if same_origin {
                    verdict
                } else {
                    Verdict::cut(reason::FRAGMENTS_FULL, verdict.rule)
                };
            }
            let limit = self.limits.fragments_per_endpoint as usize;
            let held = self
                .datagrams
                .values()
                .filter(|first| first.connection.map(|c| c.origin) == Some(origin))
                .count();
            if held >= limit {
                return Verdict::cut(reason::FRAGMENTS_FULL, verdict.rule);
            }
        }
        let first = FirstFragment {
            connection,
            revision: self.revision,
            rule: verdict.rule,
        };
        self.datagrams.insert(datagram, first);
        verdict
    }
}
