//! The policy question for a new connection: may this endpoint, in this
//! direction, talk to this peer on this protocol and port? Two LPM lookups
//! at most (the peer's identity, then "any peer"), whatever the number of
//! tiers, policies and rules: the compiler resolved precedence into the
//! entries' verdicts.

use netseg_contract::{
    DIRECTION_EGRESS, DIRECTION_INGRESS, Endpoint, IpcacheV4Key, IpcacheV6Key, POLICY_PREFIX_FULL,
    PROTO_SCTP, PROTO_TCP, PROTO_UDP, PolicyKey, PolicyValue, VERDICT_ALLOW, identity, rule,
};

use crate::{
    maps::{IPCACHE_V4, IPCACHE_V6, LpmKey, POLICY},
    parse::{Addr, Tuple},
};

/// The compiled verdict on a new connection: `Ok` with the id of what
/// allowed it, or `Err` with the id of what denied it ([`rule::NONE`] when
/// no entry decides: denied all the same).
#[inline(always)]
pub fn verdict(
    slot: u32,
    endpoint: &Endpoint,
    direction: u8,
    peer: &Addr,
    protocol: u8,
    dst_port: u16,
) -> Result<u32, u32> {
    let policy = if direction == DIRECTION_INGRESS {
        endpoint.ingress_policy
    } else {
        endpoint.egress_policy
    };
    // Only these protocols have ports; for the rest a rule either allows
    // every protocol or does not apply.
    let port = match protocol {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => dst_port,
        _ => 0,
    };
    let peer_identity = identity_of(slot, peer);
    match lookup(slot, policy, peer_identity, protocol, port)
        .or_else(|| lookup(slot, policy, identity::ANY, protocol, port))
    {
        Some(value) if value.verdict == VERDICT_ALLOW => Ok(value.rule),
        Some(value) => Err(value.rule),
        None => Err(rule::NONE),
    }
}

/// Whether state admitted under an earlier revision (a tracked connection,
/// a fragmented datagram) is still allowed by the policy of `revision`.
/// `origin` and `original` are the direction and tuple of the connection's
/// first packet. If it is, `admitted` and `rule` are restamped; if not,
/// `rule` becomes what denies it now, for the revocation's record.
#[inline(always)]
pub fn still_allowed(
    revision: u32,
    endpoint: &Endpoint,
    origin: u8,
    original: &Tuple,
    admitted: &mut u32,
    rule: &mut u32,
) -> bool {
    let peer = if origin == DIRECTION_EGRESS {
        &original.dst
    } else {
        &original.src
    };
    let slot = revision & 1;
    match verdict(
        slot,
        endpoint,
        origin,
        peer,
        original.protocol,
        original.dst_port,
    ) {
        Ok(allowing) => {
            *admitted = revision;
            *rule = allowing;
            true
        }
        Err(denying) => {
            *rule = denying;
            false
        }
    }
}

#[inline(always)]
fn lookup(slot: u32, policy: u32, identity: u32, protocol: u8, port: u16) -> Option<PolicyValue> {
    let key = LpmKey::new(
        POLICY_PREFIX_FULL,
        PolicyKey {
            slot,
            policy,
            identity,
            protocol,
            // `port` holds the wire bytes, so its native bytes are big-endian.
            port: port.to_ne_bytes(),
            _pad: 0,
        },
    );
    POLICY.get(&key).copied()
}

#[inline(always)]
fn identity_of(slot: u32, addr: &Addr) -> u32 {
    let found = if addr.is_ipv4_mapped() {
        let key = LpmKey::new(
            32 + 32,
            IpcacheV4Key {
                slot,
                addr: [addr.0[12], addr.0[13], addr.0[14], addr.0[15]],
            },
        );
        IPCACHE_V4.get(&key).copied()
    } else {
        let key = LpmKey::new(32 + 128, IpcacheV6Key { slot, addr: addr.0 });
        IPCACHE_V6.get(&key).copied()
    };
    found.unwrap_or(identity::WORLD)
}
