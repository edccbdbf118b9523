//! netseg's node daemon as a library: the `netseg` binary is its command
//! line, and the benchmarks drive the same code (the flow pipeline) without
//! a kernel.

pub mod check;
pub mod cli;
pub mod cluster_status;
mod cni;
pub mod daemon;
pub mod datapath;
pub mod demo;
pub mod enforcer;
pub mod explain;
pub mod flows;
pub mod metrics;
mod node;
pub mod sources;
mod status;
