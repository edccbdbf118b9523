//! The NetworkPolicy conformance suite on real traffic.
//!
//! The upstream e2e connectivity cases (#1–#48 of shared/NETPOL-CASES.md)
//! under `--default-action allow`, cyclonus-style cases beyond them, and
//! zero-trust cases under `--default-action deny`. Every group builds one
//! node with namespaces x, y, z and pods a, b, c in each (the older full 3x3
//! model), every pod serving TCP and UDP 80 and 81 and receiving SCTP, and
//! runs one daemon; each case writes its policies, waits for the daemon to
//! enforce them, probes all 72 ordered pairs (loopback ignored, as upstream),
//! and removes them again. A group reports every failing case with its
//! expected and observed matrices.
//!
//! Root only. Build the daemon first: `cargo build -p netseg`.

mod conformance {
    pub mod case;
    pub mod cyclonus;
    pub mod cyclonus_peers;
    pub mod upstream_01_21;
    pub mod upstream_22_42;
    pub mod upstream_43_48;
    pub mod zero_trust;
}

use anyhow::Result;
use conformance::case::model_layout;
use conformance::{cyclonus, upstream_01_21, upstream_22_42, upstream_43_48, zero_trust};
use netseg_testbed::suite::{WorldConfig, run_group};

#[test]
fn upstream_cases_1_to_21_over_tcp() -> Result<()> {
    run_group(
        WorldConfig::allow("netpol-1-21", model_layout()),
        upstream_01_21::cases,
    )
}

#[test]
fn upstream_cases_22_to_42_over_tcp() -> Result<()> {
    run_group(
        WorldConfig::allow("netpol-22-42", model_layout()),
        upstream_22_42::cases,
    )
}

#[test]
fn upstream_cases_43_to_48_over_udp_and_sctp() -> Result<()> {
    run_group(
        WorldConfig::allow("netpol-43-48", model_layout()),
        upstream_43_48::cases,
    )
}

#[test]
fn cyclonus_style_cases() -> Result<()> {
    run_group(cyclonus::config(), cyclonus::cases)
}

#[test]
fn zero_trust_cases_under_default_deny() -> Result<()> {
    run_group(
        WorldConfig::deny("zero-trust", model_layout()),
        zero_trust::cases,
    )
}
