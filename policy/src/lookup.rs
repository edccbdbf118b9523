//! The datapath's decision, computed over a compilation's maps.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netseg_contract::{PolicyValue, identity};

use crate::types::{Compiled, Direction, PodRef, PolicyEntryKey, PortPrefix};

/// The identity of `addr`: longest-prefix match in the ipcache, WORLD on a miss.
pub fn lookup_identity(compiled: &Compiled, addr: IpAddr) -> u32 {
    let max_len = if addr.is_ipv4() { 32 } else { 128 };
    (0..=max_len)
        .rev()
        .filter_map(|len| IpNetwork::new(addr, len).ok())
        .find_map(|net| {
            let key = IpNetwork::new(net.network(), net.prefix()).unwrap_or(net);
            compiled.ipcache.get(&key).copied()
        })
        .unwrap_or(identity::WORLD)
}

/// Longest-prefix match of (policy, identity, protocol, port) in the POLICY
/// entries: the most specific entry's value.
fn lookup_policy(
    compiled: &Compiled,
    policy: u32,
    identity: u32,
    protocol: u8,
    port: u16,
) -> Option<PolicyValue> {
    let with_port = (1..=16u8)
        .rev()
        .map(|len| Some(PortPrefix::containing(port, len)));
    let keys = with_port
        .map(|port| (Some(protocol), port))
        .chain([(Some(protocol), None), (None, None)]);
    keys.map(|(protocol, port)| PolicyEntryKey {
        policy,
        identity,
        protocol,
        port,
    })
    .find_map(|key| compiled.policy.get(&key).copied())
}

/// The POLICY value that decides a new connection of `endpoint` in
/// `direction` with `peer` on `protocol`/`port`, exactly as the datapath
/// finds it: its verdict and verdict id (see [`Compiled::verdicts`]), or
/// `None` (no entry, or not a local endpoint: denied).
///
/// The peer's identity is looked up first, then [`identity::ANY`]; a hit with
/// the peer's identity is preferred. Use port 0 for packets without ports.
pub fn lookup(
    compiled: &Compiled,
    endpoint: &PodRef,
    direction: Direction,
    peer: IpAddr,
    protocol: u8,
    port: u16,
) -> Option<PolicyValue> {
    let policy = compiled.endpoints.get(endpoint)?.policy(direction);
    let peer_identity = lookup_identity(compiled, peer);
    lookup_policy(compiled, policy, peer_identity, protocol, port)
        .or_else(|| lookup_policy(compiled, policy, identity::ANY, protocol, port))
}
