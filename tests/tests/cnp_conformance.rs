//! The ClusterNetworkPolicy conformance suite on real traffic.
//!
//! Every upstream test (kubernetes-sigs/network-policy-api `conformance/`,
//! 24 tests and 92 subtests, see shared/CNP.md §3), ported in order with
//! its cumulative subtest state, and the cases beyond the upstream
//! snapshot. Both groups run on the upstream world (four houses, two pods
//! each, and a host-network pod on the node, which has a Node object) under
//! `--default-action allow`, as upstream assumes; after every subtest every
//! ordered pair of pods is probed, and a denied pair must be a silent drop
//! (a timeout), as upstream's probe requires, never a refusal.
//!
//! Root only. Build the daemon first: `cargo build -p netseg`.

mod cnp_conformance {
    pub mod baseline_pass;
    pub mod beyond_upstream;
    pub mod directional;
    pub mod fail_closed;
    pub mod houses;
    pub mod inline_cidr;
    pub mod integration;
    pub mod manifests;
    pub mod node_peers;
    pub mod objects;
    pub mod ordered_rules;
    pub mod same_priority;
    pub mod upstream;
}

use anyhow::Result;
use cnp_conformance::{beyond_upstream, houses, upstream};
use netseg_testbed::suite::run_group;

#[test]
fn every_upstream_test() -> Result<()> {
    run_group(houses::config("cnp-upstream"), upstream::cases)
}

#[test]
fn cases_beyond_the_upstream_snapshot() -> Result<()> {
    run_group(houses::config("cnp-beyond"), beyond_upstream::cases)
}
