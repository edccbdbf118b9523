//! The policy question, asked of the published state: which rule allows a
//! connection's first packet.

use netseg_contract::identity;
use netseg_policy::PolicyEntryKey;

use super::{Addr, Connection, Direction, IFINDEX, Model, SCTP, TCP, Tuple, UDP};

impl Model {
    /// The rule that allows `connection`'s first packet under the policy in
    /// force: the most specific entry for the peer's identity, else for any
    /// peer, if that entry allows.
    pub(super) fn allowing_rule(&self, connection: Connection) -> Option<u32> {
        let endpoint = self.policy.endpoints.get(&IFINDEX)?;
        let policy = match connection.origin {
            Direction::Egress => endpoint.egress_policy,
            Direction::Ingress => endpoint.ingress_policy,
        };
        let tuple = connection.tuple;
        // Only these protocols have ports.
        let port = matches!(tuple.protocol, TCP | UDP | SCTP).then_some(tuple.dst_port);
        let peer = self.identity(connection.peer());
        [peer, identity::ANY]
            .into_iter()
            .find_map(|identity| {
                self.policy
                    .policy
                    .iter()
                    .filter(|(key, _)| key.policy == policy && key.identity == identity)
                    .filter(|(key, _)| matches_rule(key, tuple.protocol, port.unwrap_or(0)))
                    .max_by_key(|(key, _)| (key.protocol.is_some(), key.port.map(|p| p.len)))
                    .map(|(_, value)| *value)
            })
            .filter(|value| value.verdict == netseg_contract::VERDICT_ALLOW)
            .map(|value| value.rule)
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
