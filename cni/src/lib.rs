//! `netseg-cni`, a chained CNI plugin (CNI spec 1.1.0, which also serves
//! runtimes speaking 0.3.0 to 1.0.0): on ADD it hands the pod's host-side
//! interface, addresses and name to the netseg daemon on this node and
//! returns only once the daemon enforces the pod's policy there, so the
//! runtime starts no container of the pod before that.
//!
//! The library holds what the daemon shares with the plugin (the [`wire`]
//! protocol), what the plugin reads from the runtime ([`spec`]) and the
//! installer the DaemonSet's init container runs ([`install`]).

pub mod install;
pub mod spec;
pub mod wire;
