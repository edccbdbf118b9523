//! Packets that could carry data past default deny: ICMP errors, neighbour
//! discovery and MLD, IPv4-mapped IPv6 addresses.

use netseg_contract::reason;

use super::packet::{ACK, Frame, ICMP, ICMPV6, SYN, TCP, UDP, ethernet};
use super::{Bench, DROP, EGRESS_POLICY, INGRESS_POLICY, PASS, allow, bench, entry, policy};

const UNREACHABLE_V4: u8 = 3;
const UNREACHABLE_V6: u8 = 1;
const NEIGHBOUR_SOLICITATION: u8 = 135;
const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
const MLDV2_REPORT: u8 = 143;

impl Bench {
    /// Runs `send` and returns how much the counter of `reason` grew.
    fn counted(&mut self, reason: u8, send: impl FnOnce(&mut Self)) -> u64 {
        let before = self.counter(reason);
        send(self);
        self.counter(reason) - before
    }
}

/// A neighbour discovery or MLD message of `icmp_type` (body zeroed).
fn link_control(src: &str, dst: &str, icmp_type: u8) -> Frame {
    Frame::icmp(src, dst, icmp_type, &[0; 20])
}

#[test]
fn an_icmp_error_travels_only_between_the_ends_of_its_connection() {
    let mut bench = bench();
    // The pod's own UDP flow; errors about it come back from its peer only.
    let sent = Frame::udp("10.0.0.1", 4500, "10.0.0.2", 53);
    assert_eq!(bench.egress(&sent), PASS);
    let error = |src| Frame::icmp_error(src, "10.0.0.1", UNREACHABLE_V4, &sent, &[]);
    assert_eq!(bench.ingress(&error("10.0.0.2")), PASS);
    let misdirected = bench.counted(reason::ICMP_ERROR_MISDIRECTED, |b| {
        assert_eq!(b.ingress(&error("10.0.0.3")), DROP, "from a third address");
    });
    assert_eq!(misdirected, 1);
    // A connection the peer opened: the pod's errors go back to the peer only.
    for (pod, peer, elsewhere) in [
        ("10.0.0.1", "10.0.0.2", "198.51.100.1"),
        ("fd00::1", "fd00::2", "2001:db8::1"),
    ] {
        let received = Frame::tcp(peer, 5000, pod, 8000, SYN);
        assert_eq!(bench.ingress(&received), PASS);
        let unreachable = if pod.contains(':') {
            UNREACHABLE_V6
        } else {
            UNREACHABLE_V4
        };
        let error = |dst| Frame::icmp_error(pod, dst, unreachable, &received, b"payload");
        assert_eq!(bench.egress(&error(peer)), PASS, "{pod} to its peer");
        assert_eq!(
            bench.egress(&error(elsewhere)),
            DROP,
            "{pod} to an address off the connection"
        );
    }
}

#[test]
fn a_third_party_error_reaches_the_pod_only_when_its_icmp_is_admitted() {
    let mut bench = bench();
    let sent = Frame::udp("10.0.0.1", 4550, "10.0.0.2", 53);
    assert_eq!(bench.egress(&sent), PASS);
    // 10.0.0.3 (identity 17) stands for a router on the path.
    let error = Frame::icmp_error("10.0.0.3", "10.0.0.1", UNREACHABLE_V4, &sent, &[]);
    assert_eq!(bench.ingress(&error), DROP, "no ICMP admitted from it");
    let mut admitted = policy();
    admitted
        .policy
        .insert(entry(INGRESS_POLICY, 17, Some(ICMP), None), allow(106));
    bench.publisher.publish(&admitted).expect("publish");
    assert_eq!(bench.ingress(&error), PASS, "its ICMP is admitted");
}

#[test]
fn an_icmp_error_is_no_longer_than_an_error_needs_to_be() {
    let mut bench = bench();
    for (pod, peer, unreachable, quote_and_headers, max) in [
        ("10.0.0.1", "10.0.0.2", UNREACHABLE_V4, 20 + 8 + 28, 576),
        ("fd00::1", "fd00::2", UNREACHABLE_V6, 40 + 8 + 48, 1280),
    ] {
        let sent = Frame::udp(pod, 4600, peer, 53);
        assert_eq!(bench.egress(&sent), PASS);
        let error = |len: usize| {
            let extra = vec![0x5a; len - quote_and_headers];
            Frame::icmp_error(peer, pod, unreachable, &sent, &extra)
        };
        assert_eq!(bench.ingress(&error(max)), PASS, "{max} bytes");
        assert_eq!(bench.ingress(&error(max + 1)), DROP, "{} bytes", max + 1);
    }
}

#[test]
fn an_icmp_error_from_an_address_that_is_not_the_pods_is_spoofed() {
    let mut bench = bench();
    let received = Frame::tcp("10.0.0.2", 5000, "10.0.0.1", 8000, SYN);
    assert_eq!(bench.ingress(&received), PASS);
    let spoofed = bench.counted(reason::SPOOFED, |b| {
        let error = Frame::icmp_error("10.0.0.9", "10.0.0.2", UNREACHABLE_V4, &received, &[]);
        assert_eq!(b.egress(&error), DROP);
    });
    assert_eq!(spoofed, 1);
}

#[test]
fn an_icmp_error_of_a_revoked_connection_is_dropped_and_closes_it() {
    let mut bench = bench();
    let sent = Frame::udp("10.0.0.1", 4700, "10.0.0.2", 53);
    assert_eq!(bench.egress(&sent), PASS);
    let mut revoked = policy();
    revoked
        .policy
        .retain(|key, _| key.protocol != Some(UDP) || key.policy != EGRESS_POLICY);
    bench.publisher.publish(&revoked).expect("publish");
    let error = Frame::icmp_error("10.0.0.2", "10.0.0.1", UNREACHABLE_V4, &sent, &[]);
    let cut = bench.counted(reason::REVOKED, |b| {
        assert_eq!(b.ingress(&error), DROP);
    });
    assert_eq!(cut, 1);
    // Allowed again, the connection is gone: its reply is a new (denied) one.
    bench.publisher.publish(&policy()).expect("publish");
    let reply = Frame::udp("10.0.0.2", 53, "10.0.0.1", 4700);
    assert_eq!(bench.ingress(&reply), DROP);
}

#[test]
fn an_icmp_error_of_a_connection_still_allowed_passes_after_a_policy_change() {
    let mut bench = bench();
    let sent = Frame::udp("10.0.0.1", 4800, "10.0.0.2", 53);
    assert_eq!(bench.egress(&sent), PASS);
    let mut changed = policy();
    changed.policy.retain(|key, _| key.protocol != Some(TCP));
    bench.publisher.publish(&changed).expect("publish");
    let error = Frame::icmp_error("10.0.0.2", "10.0.0.1", UNREACHABLE_V4, &sent, &[]);
    assert_eq!(bench.ingress(&error), PASS);
}

#[test]
fn neighbour_discovery_and_mld_stay_on_the_link() {
    let mut bench = bench();
    for (src, dst, icmp_type) in [
        ("fd00::1", "ff02::1:ff00:2", NEIGHBOUR_SOLICITATION),
        ("fe80::5", "fe80::1", NEIGHBOUR_SOLICITATION),
        ("::", "ff02::1:ff00:1", NEIGHBOUR_SOLICITATION),
        ("fe80::5", "fe80::1", NEIGHBOUR_ADVERTISEMENT),
        ("fe80::5", "ff02::16", MLDV2_REPORT),
        ("fe80::5", "ff02::2", 133),
    ] {
        let frame = link_control(src, dst, icmp_type);
        assert_eq!(bench.egress(&frame), PASS, "{icmp_type} {src} -> {dst}");
    }
    for (src, dst, icmp_type) in [
        ("fd00::1", "2001:db8::1", NEIGHBOUR_SOLICITATION),
        ("fe80::5", "fd00::2", NEIGHBOUR_ADVERTISEMENT),
        ("fd00::9", "ff02::1:ff00:2", NEIGHBOUR_SOLICITATION),
        ("2001:db8::66", "fe80::1", NEIGHBOUR_ADVERTISEMENT),
        ("fe80::5", "ff05::2", MLDV2_REPORT),
        ("fe80::5", "ff02::3", MLDV2_REPORT),
    ] {
        let frame = link_control(src, dst, icmp_type);
        let off_link = bench.counted(reason::OFF_LINK, |b| {
            assert_eq!(b.egress(&frame), DROP, "{icmp_type} {src} -> {dst}");
        });
        assert_eq!(off_link, 1, "{icmp_type} {src} -> {dst}");
    }
    // What the node sends: its answers, its solicitations, its queries.
    for (src, dst, icmp_type) in [
        ("fe80::1", "fd00::1", NEIGHBOUR_ADVERTISEMENT),
        ("fd00:ff::1", "fd00::1", NEIGHBOUR_ADVERTISEMENT),
        ("fe80::1", "ff02::1:ff00:1", NEIGHBOUR_SOLICITATION),
        ("fe80::1", "ff02::1", 130),
    ] {
        let frame = link_control(src, dst, icmp_type);
        assert_eq!(bench.ingress(&frame), PASS, "{icmp_type} {src} -> {dst}");
    }
    let elsewhere = link_control("fe80::1", "fd00::9", NEIGHBOUR_ADVERTISEMENT);
    assert_eq!(
        bench.ingress(&elsewhere),
        DROP,
        "to an address not the pod's"
    );
    // Forwarded (hop limit below 255), it did not come from the link.
    let forwarded = link_control("fe80::1", "fd00::1", NEIGHBOUR_ADVERTISEMENT).with_hop_limit(254);
    assert_eq!(bench.ingress(&forwarded), DROP);
}

#[test]
fn an_interface_without_an_endpoint_passes_no_link_control() {
    let mut bench = bench();
    let mut empty = policy();
    empty.endpoints.clear();
    bench.publisher.publish(&empty).expect("publish");
    let solicitation = link_control("fe80::5", "ff02::1:ff00:1", NEIGHBOUR_SOLICITATION);
    assert_eq!(bench.egress(&solicitation), DROP);
    let arp = ethernet(0x0806, &[0; 28]);
    assert_eq!(bench.datapath.run_program(false, &arp), DROP);
}

#[test]
fn ipv4_mapped_ipv6_addresses_are_malformed() {
    let mut bench = bench();
    let malformed = bench.counted(reason::MALFORMED, |b| {
        // The policy allows TCP 80 to 10.0.0.2; as IPv6 it must not.
        let mapped_both = Frame::tcp("::ffff:10.0.0.1", 4000, "::ffff:10.0.0.2", 80, SYN);
        assert_eq!(b.egress(&mapped_both), DROP);
        let mapped_peer = Frame::tcp("fd00::1", 4001, "::ffff:10.0.0.2", 80, SYN);
        assert_eq!(b.egress(&mapped_peer), DROP);
    });
    assert_eq!(malformed, 2);
    // An ICMPv6 error quoting the pod's IPv4 flow in IPv6 clothing.
    let sent = Frame::udp("10.0.0.1", 4900, "10.0.0.2", 53);
    assert_eq!(bench.egress(&sent), PASS);
    let quoted = Frame::udp("::ffff:10.0.0.1", 4900, "::ffff:10.0.0.2", 53);
    let error = Frame::icmp_error("fd00::2", "fd00::1", UNREACHABLE_V6, &quoted, &[]);
    assert_eq!(error.protocol, ICMPV6);
    let malformed = bench.counted(reason::MALFORMED, |b| {
        assert_eq!(b.ingress(&error), DROP);
    });
    assert_eq!(malformed, 1);
}

/// ICMPv6 is ICMPv6 only inside IPv6: an IPv4 packet of protocol 58 that
/// looks like neighbour discovery is a protocol the policy decides, never
/// link control (the hole the differential fuzzer found at 46c1b93).
#[test]
fn icmpv6_inside_ipv4_is_a_protocol_the_policy_decides() {
    let mut bench = bench();
    let mut solicitation = vec![0; 24];
    solicitation[0] = NEIGHBOUR_SOLICITATION;
    let inbound = Frame::new("10.0.0.3", "10.0.0.1", ICMPV6, solicitation.clone());
    let denied = bench.counted(reason::POLICY_DENIED, |b| {
        assert_eq!(b.ingress(&inbound), DROP, "from a peer no rule admits");
    });
    assert_eq!(denied, 1);
    let outbound = Frame::new("10.0.0.1", "10.0.0.3", ICMPV6, solicitation.clone());
    let denied = bench.counted(reason::POLICY_DENIED, |b| {
        assert_eq!(b.egress(&outbound), DROP, "to a peer no rule allows");
    });
    assert_eq!(denied, 1);
    // The egress rules for protocol 58 toward 10.0.0.2 allow it, as a
    // connection of that protocol.
    let allowed = Frame::new("10.0.0.1", "10.0.0.2", ICMPV6, solicitation);
    let opened = bench.counted(reason::NEW_ALLOWED, |b| {
        assert_eq!(b.egress(&allowed), PASS);
    });
    assert_eq!(opened, 1);
}

/// One conntrack key serves a connection's packets and its replies, and an
/// established packet passes on its entry before the address checks. So a
/// pod forging its peer's side of its own connection (the reply's tuple,
/// sent out of the pod), or a peer forging the pod's side (the pod's
/// tuple, sent toward it), must find no entry and fail as spoofed.
#[test]
fn neither_end_passes_as_the_other_on_their_connection() {
    let mut bench = bench();
    let out = |flags| Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, flags);
    let back = |flags| Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, flags);
    assert_eq!(bench.egress(&out(SYN)), PASS);
    assert_eq!(bench.ingress(&back(SYN | ACK)), PASS);
    let spoofed = bench.counted(reason::SPOOFED, |b| {
        assert_eq!(b.egress(&back(ACK)), DROP, "the pod sending as its peer");
        assert_eq!(b.ingress(&out(ACK)), DROP, "the peer sending as the pod");
    });
    assert_eq!(spoofed, 2);
    // The connection itself carries on.
    assert_eq!(bench.egress(&out(ACK)), PASS);
    assert_eq!(bench.ingress(&back(ACK)), PASS);
}
