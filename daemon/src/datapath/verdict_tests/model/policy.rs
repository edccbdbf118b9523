//! The policy question, asked of the published state: which rule allows a
//! connection's first packet.

use netseg_contract::{VERDICT_ALLOW, identity, rule};
use netseg_policy::PolicyEntryKey;

use super::{Addr, Connection, Direction, IFINDEX, Model, SCTP, TCP, Tuple, UDP};

impl Model {
    /// The rule that allows `connection`'s first packet under the policy in
    /// force, if [`Model::decision`] allows it.
    pub(super) fn allowing_rule(&self, connection: Connection) -> Option<u32> {
        self.decision(connection).ok()
    }

    /// The verdict on `connection`'s first packet under the policy in force,
    /// from the most specific entry for the peer's identity, else for any
    /// peer: `Ok` with the verdict id when it allows, `Err` with the one that
    /// denies ([`rule::NONE`] without an entry).
    pub(super) fn decision(&self, connection: Connection) -> Result<u32, u32> {
        let Some(endpoint) = self.policy.endpoints.get(&IFINDEX) else {
            return Err(rule::NONE);
        };
        let policy = match connection.origin {
            Direction::Egress => endpoint.egress_policy,
            Direction::Ingress => endpoint.ingress_policy,
        };
        let tuple = connection.tuple;
        // Only these protocols have ports.
        let port = matches!(tuple.protocol, TCP | UDP | SCTP).then_some(tuple.dst_port);
        let peer = self.identity(connection.peer());
        let value = [peer, identity::ANY].into_iter().find_map(|identity| {
            self.policy
                .policy
                .iter()
                .filter(|(key, _)| key.policy == policy && key.identity == identity)
                .filter(|(key, _)| matches_rule(key, tuple.protocol, port.unwrap_or(0)))
                .max_by_key(|(key, _)| (key.protocol.is_some(), key.port.map(|p| p.len)))
                .map(|(_, value)| *value)
        });
        match value {
            Some(value) if value.verdict == VERDICT_ALLOW => Ok(value.rule),
            Some(value) => Err(value.rule),
            None => Err(rule::NONE),
        }
    }

    /// Whether the pod's ingress policy admits the ICMP message `tuple` as
    /// if it opened a connection.
    pub(super) fn icmp_admitted_from(&self, tuple: Tuple) -> bool {
        let connection = Connection {
            origin: Direction::Ingress,
            tuple,
        };
        self.allowing_rule(connection).is_some()
    }

    /// The identity of the longest ipcache prefix holding `addr`.
    fn identity(&self, addr: Addr) -> u32 {
        let ip = addr.ip();
        self.policy
            .ipcache
            .iter()
            .filter(|(prefix, _)| prefix.contains(ip))
            .max_by_key(|(prefix, _)| prefix.prefix())
            .map_or(identity::WORLD, |(_, identity)| *identity)
    }
}

fn matches_rule(key: &PolicyEntryKey, protocol: u8, port: u16) -> bool {
    match (key.protocol, key.port) {
        (None, _) => true,
        (Some(p), None) => p == protocol,
        (Some(p), Some(prefix)) => {
            let len = u32::from(prefix.len.min(16));
            let mask = if len == 0 { 0 } else { u16::MAX << (16 - len) };
            p == protocol && port & mask == prefix.port & mask
        }
    }
}
