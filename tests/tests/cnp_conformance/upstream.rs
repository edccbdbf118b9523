//! The 24 upstream tests (92 subtests), numbered as shared/CNP.md §3.2
//! numbers them: the Admin tier (#1–#10), the Baseline tier (#11–#18), and
//! the experimental profile: named ports (#19, #20, #22, #23) and node
//! peers (#21, #24), which probe a host-network pod on the node's address.

use netseg_testbed::suite::{Case, Model};

use super::inline_cidr;
use super::integration::{integration, priority_field};
use super::manifests::{egress_sctp, egress_tcp, egress_udp, gress, ingress_sctp};
use super::manifests::{ingress_tcp, ingress_udp};
use super::node_peers;
use super::objects::Tier::{Admin, Baseline};

pub fn cases(m: &Model) -> Vec<Case> {
    vec![
        ingress_tcp(Admin).case(m, "#1 CNPAdminTierIngressTCP"),
        ingress_udp(Admin).case(m, "#2 CNPAdminTierIngressUDP"),
        ingress_sctp(Admin).case(m, "#3 CNPAdminTierIngressSCTP"),
        egress_tcp(Admin).case(m, "#4 CNPAdminTierEgressTCP"),
        egress_udp(Admin).case(m, "#5 CNPAdminTierEgressUDP"),
        egress_sctp(Admin).case(m, "#6 CNPAdminTierEgressSCTP"),
        gress(Admin).case(m, "#7 CNPAdminTierGress"),
        inline_cidr::case(m, "#8 CNPAdminTierEgressInlineCIDRPeers", Admin),
        integration(m, "#9 CNPAdminTierIntegration"),
        priority_field(m, "#10 CNPAdminTierPriorityField"),
        ingress_tcp(Baseline).case(m, "#11 CNPBaselineTierIngressTCP"),
        ingress_udp(Baseline).case(m, "#12 CNPBaselineTierIngressUDP"),
        ingress_sctp(Baseline).case(m, "#13 CNPBaselineTierIngressSCTP"),
        egress_tcp(Baseline).case(m, "#14 CNPBaselineTierEgressTCP"),
        egress_udp(Baseline).case(m, "#15 CNPBaselineTierEgressUDP"),
        egress_sctp(Baseline).case(m, "#16 CNPBaselineTierEgressSCTP"),
        gress(Baseline).case(m, "#17 CNPBaselineTierGress"),
        inline_cidr::case(m, "#18 CNPBaselineTierEgressInlineCIDRPeers", Baseline),
        egress_tcp(Admin).named_port_case(m, "#19 CNPAdminTierEgressNamedPort", "web"),
        ingress_udp(Admin).named_port_case(m, "#20 CNPAdminTierIngressNamedPort", "dns"),
        node_peers::admin(m, "#21 CNPAdminTierEgressNodePeers"),
        egress_udp(Baseline).named_port_case(m, "#22 CNPBaselineTierEgressNamedPort", "dns"),
        ingress_tcp(Baseline).named_port_case(m, "#23 CNPBaselineTierIngressNamedPort", "web"),
        node_peers::baseline(m, "#24 CNPBaselineTierEgressNodePeers"),
    ]
}
