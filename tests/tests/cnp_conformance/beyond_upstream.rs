//! Cases beyond the upstream snapshot: the directional-isolation and
//! same-priority tests merged upstream later, Pass inside the Baseline tier,
//! fail-closed handling of a peer netseg does not implement, `nodes` peers
//! that follow a relabelled Node, and a host-network pod that no pod peer
//! matches.

use netseg_testbed::suite::{Case, Model};

use super::{baseline_pass, directional, fail_closed, node_peers, same_priority};

pub fn cases(m: &Model) -> Vec<Case> {
    let mut cases = directional::cases(m);
    cases.extend(same_priority::cases(m));
    cases.push(baseline_pass::case(m));
    cases.push(fail_closed::case(m));
    cases.push(node_peers::relabelled_node(m));
    cases.push(node_peers::host_network_is_no_pod_peer(m));
    cases
}
