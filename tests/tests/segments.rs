//! netseg's own CRDs on real traffic: Segment membership (by labels, by
//! CIDR, following relabelling), posture per direction, SegmentPolicy
//! conduits against NetworkPolicy and ClusterNetworkPolicy in every band,
//! audit mode, and failing closed on unknown segment names.
//!
//! Every case builds one node whose daemon runs `--default-action allow`
//! (so pods outside every Segment visibly keep their traffic), writes its
//! objects into the manifests directory step by step, waits until the
//! daemon enforces each step, probes real TCP, UDP and ICMP traffic (a
//! denial must be a silent drop) and reads the flow records that name what
//! decided.
//!
//! Root only. Build the daemon first: `cargo build -p netseg`.

mod segments {
    pub mod audit;
    pub mod fail_closed;
    pub mod membership;
    pub mod posture;
    pub mod precedence;
    pub mod traffic;
    pub mod world;
}
